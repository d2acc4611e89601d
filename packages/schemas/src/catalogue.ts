/**
 * Which schema describes which topics: MQTT filters, each to the id of its schema
 * (`schemas/<id>.json`). Gerrit projects hold "/" (`gerrit/openstack/nova/change-merged`), so
 * Gerrit events are one filter, `gerrit/#`, whose schema picks the event type's own by `type`.
 * Checked in order: the first filter a topic matches names its schema.
 */
export const TOPIC_SCHEMAS: ReadonlyArray<{ filter: string, id: string }> = [
  { filter: 'gerrit/#', id: 'gerrit.event' },
  { filter: 'launchpad/#', id: 'launchpad.bug-notification' },
  { filter: 'ansible/playbook/+/action/start', id: 'ansible.start' },
  { filter: 'ansible/playbook/+/task/+/+', id: 'ansible.task' },
  { filter: 'ansible/playbook/+/stats/+', id: 'ansible.stats' },
  { filter: 'ansible/playbook/+/action/finish/+', id: 'ansible.finish' },
  { filter: 'firehose/bridges/+', id: 'firehose.bridge-status' },
  { filter: 'eventsync/+', id: 'eventsync.combined-event' },
  { filter: 'eventsync/+/event/+', id: 'eventsync.http-event' },
  { filter: 'eventsync/+/trigger', id: 'eventsync.command' },
  { filter: 'eventsync/+/reset', id: 'eventsync.command' },
  { filter: '$SYS/#', id: 'sys.value' }
]

/** Schemas of the HTTP APIs' bodies: not topics, served and documented all the same. */
export const ENVELOPE_SCHEMAS: readonly string[] = [
  'history.envelope',
  'subscriptions.pull-message',
  'subscriptions.push-pubsub',
  'subscriptions.push-cloudevents'
]
