// Stands in for Gerrit's `gerrit stream-events` as an sshd ForceCommand:
//   node gerrit-stream-command.mjs LOGFILE
// Like Gerrit, it streams only events that happen after it starts: lines appended to LOGFILE
// from then on, each written unchanged. `-s TYPE` keeps only those types (lines that are not
// JSON always pass: tests inject them).
import { closeSync, openSync, readSync, statSync } from 'node:fs'

const [logFile] = process.argv.slice(2)
const command = (process.env.SSH_ORIGINAL_COMMAND ?? '').trim().split(/\s+/)
if (command[0] !== 'gerrit' || command[1] !== 'stream-events') {
  process.stderr.write(`fatal: unknown command: ${command.join(' ')}\n`)
  process.exit(1)
}
const types = new Set()
for (let i = 2; i < command.length; i++) {
  if (command[i] === '-s' && command[i + 1] !== undefined) types.add(command[++i])
}

let offset = statSync(logFile).size
let partial = ''
const fd = openSync(logFile, 'r')
process.stdout.on('error', () => process.exit(0)) // the client went away
for (const signal of ['SIGHUP', 'SIGTERM', 'SIGPIPE']) process.on(signal, () => process.exit(0))
// when sshd's session process is killed this one is re-parented: do not outlive it
const parent = process.ppid

function poll () {
  let size
  try {
    size = statSync(logFile).size
  } catch {
    process.exit(0) // the test is over and its directory gone
  }
  if (process.ppid !== parent) process.exit(0)
  if (size > offset) {
    const buffer = Buffer.alloc(size - offset)
    const n = readSync(fd, buffer, 0, buffer.length, offset)
    offset += n
    const lines = (partial + buffer.subarray(0, n).toString('utf8')).split('\n')
    partial = lines.pop() ?? ''
    const out = lines.filter(line => {
      if (types.size === 0) return true
      try {
        return types.has(JSON.parse(line).type)
      } catch {
        return true
      }
    })
    if (out.length > 0) process.stdout.write(out.map(l => l + '\n').join(''))
  }
  setTimeout(poll, 20)
}
poll()
process.on('exit', () => closeSync(fd))
