import { EXIT } from '@firehose/runtime'
import { hashPassword, parsePasswordFile, removePasswordLine, upsertPasswordLine, validateUsername } from '@firehose/broker'
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { PASSWD_HELP } from '../help.js'
import { readPassword, readPasswordFromStdin } from '../read-password.js'

export async function passwdCommand (args: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args,
      options: {
        'password-stdin': { type: 'boolean' },
        delete: { type: 'boolean', short: 'D' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true,
      allowPositionals: true
    })
  } catch (err) {
    process.stderr.write(`firehose passwd: ${(err as Error).message}\n\n${PASSWD_HELP}`)
    return EXIT.usage
  }
  const { values, positionals } = parsed
  if (values.help === true) {
    process.stdout.write(PASSWD_HELP)
    return EXIT.ok
  }
  const [file, user] = positionals
  if (file === undefined || user === undefined || positionals.length > 2) {
    process.stderr.write(`firehose passwd: expected FILE and USER\n\n${PASSWD_HELP}`)
    return EXIT.usage
  }
  const problem = validateUsername(user)
  if (problem !== null) {
    process.stderr.write(`firehose passwd: user "${user}": ${problem}\n`)
    return EXIT.usage
  }

  let text = ''
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || values.delete === true) {
      process.stderr.write(`firehose passwd: cannot read ${file}: ${(err as Error).message}\n`)
      return EXIT.failure
    }
  }

  if (values.delete === true) {
    if (!parsePasswordFile(text).users.has(user)) {
      process.stderr.write(`firehose passwd: user "${user}" is not in ${file}\n`)
      return EXIT.failure
    }
    await writeAtomically(file, removePasswordLine(text, user))
    process.stdout.write(`removed "${user}" from ${file}; send the broker SIGHUP to apply\n`)
    return EXIT.ok
  }

  let password: string
  try {
    password = values['password-stdin'] === true ? await readPasswordFromStdin() : await readPassword()
  } catch (err) {
    process.stderr.write(`firehose passwd: ${(err as Error).message}\n`)
    return EXIT.failure
  }
  if (password === '') {
    process.stderr.write('firehose passwd: the password is empty\n')
    return EXIT.usage
  }
  const existed = parsePasswordFile(text).users.has(user)
  await writeAtomically(file, upsertPasswordLine(text, user, await hashPassword(password)))
  process.stdout.write(`${existed ? 'updated' : 'added'} "${user}" in ${file}; send the broker SIGHUP to apply\n`)
  return EXIT.ok
}

/** Written beside the file, then renamed: a crash never leaves a half-written password file. */
async function writeAtomically (file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  await writeFile(tmp, text, { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, file)
}
