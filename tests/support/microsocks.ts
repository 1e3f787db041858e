/**
 * Debian's `microsocks`, a real SOCKS5 proxy, on a loopback port for tests (.ci/run installs
 * it when missing).
 *
 * @module
 */
import { freePort, spawnListening } from "./server_process.ts";

export class Microsocks {
  private constructor(readonly port: number, readonly child: Deno.ChildProcess) {}

  /** Starts it on `port` (a free one by default) and waits until it accepts. */
  static async start(port?: number): Promise<Microsocks> {
    port ??= freePort();
    const child = await spawnListening(
      "microsocks",
      ["-i", "127.0.0.1", "-p", String(port)],
      port,
      "null",
    );
    return new Microsocks(port, child);
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
