import t from 'tap'
import { streamEventsCommand } from '../src/command.js'
import { formatT1 } from '../src/events-log.js'

t.equal(streamEventsCommand([]), 'gerrit stream-events')
t.equal(streamEventsCommand(['comment-added', 'change-merged']), 'gerrit stream-events -s comment-added -s change-merged')
t.equal(formatT1(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), '2026-01-02 03:04:05', 'events-log t1, in UTC')
