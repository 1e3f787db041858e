/**
 * Debian's `microsocks`, a real SOCKS5 proxy, on a loopback port for tests (.ci/run installs
 * it when missing).
 *
 * @module
 */

export class Microsocks {
  private constructor(readonly port: number, readonly child: Deno.ChildProcess) {}

  /** Starts it on `port` (a free one by default) and waits until it accepts. */
  static async start(port?: number): Promise<Microsocks> {
    if (port === undefined) {
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      port = probe.addr.port;
      probe.close();
    }
    const child = new Deno.Command("microsocks", {
      args: ["-i", "127.0.0.1", "-p", String(port)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    for (let tries = 0;; tries++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return new Microsocks(port, child);
      } catch (error) {
        if (tries > 200) {
          child.kill("SIGKILL");
          await child.status;
          throw error;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /** SIGKILLs it and waits until it is gone. */
  async kill(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // exited already
    }
    await this.child.status;
  }
}
