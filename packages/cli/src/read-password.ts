import { createInterface } from 'node:readline'

/** The first line of standard input, for scripts (`--password-stdin`). */
export async function readPasswordFromStdin (): Promise<string> {
  const rl = createInterface({ input: process.stdin, terminal: false })
  const line = await new Promise<string | undefined>(resolve => {
    rl.once('line', resolve)
    rl.once('close', () => resolve(undefined))
  })
  rl.close()
  if (line === undefined) throw new Error('no password on standard input')
  return line.replace(/\r$/, '')
}

/** Prompts twice on the terminal without echoing. */
export async function readPassword (): Promise<string> {
  if (process.stdin.isTTY !== true) throw new Error('standard input is not a terminal: use --password-stdin')
  const first = await promptHidden('Password: ')
  const second = await promptHidden('Reenter password: ')
  if (first !== second) throw new Error('the passwords do not match')
  return first
}

async function promptHidden (prompt: string): Promise<string> {
  const stdin = process.stdin
  process.stderr.write(prompt)
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  return await new Promise<string>((resolve, reject) => {
    let value = ''
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          finish()
          resolve(value)
          return
        } else if (ch === '\u0003') { // Ctrl-C
          finish()
          reject(new Error('interrupted'))
          return
        } else if (ch === '\u007f' || ch === '\b') {
          value = value.slice(0, -1)
        } else {
          value += ch
        }
      }
    }
    const finish = (): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
    }
    stdin.on('data', onData)
  })
}
