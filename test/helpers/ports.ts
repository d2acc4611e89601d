import { connect, createServer } from 'node:net'

/** Ports this test process has handed out: the kernel may offer a just-closed port again. */
const given = new Set<number>()

/** A free high port on loopback, chosen by the kernel (never one of the default ports), not given out before by this process. */
export async function freePort (): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const address = server.address()
        server.close(() => typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')))
      })
    })
    if (given.has(port)) continue
    given.add(port)
    return port
  }
}

/** Whether something accepts TCP connections on a loopback port. */
export async function portIsOpen (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
    s.on('error', () => resolve(false))
  })
}
