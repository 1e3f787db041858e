/**
 * Our backup server as its own process (`cli.ts server`), as an operator runs it, for the
 * tests and benchmarks that kill or time it.
 *
 * @module
 */
import { RUNTIME_FLAGS } from "../../lib/cli/runtime_flags.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** A loopback port nothing listens on (just now). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Waits until something accepts connections on the loopback `port`. */
export async function waitListening(port: number): Promise<void> {
  for (let tries = 0;; tries++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch (error) {
      if (tries > 500) throw error;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Spawns `command` and waits until it listens on the loopback `port`; killed if it never does. */
export async function spawnListening(
  command: string,
  args: string[],
  port: number,
  stderr: "piped" | "inherit" | "null" = "piped",
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(command, { args, stdout: "null", stderr }).spawn();
  try {
    await waitListening(port);
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  }
  return child;
}

/**
 * Starts the server (`cli.ts server <url> 127.0.0.1:<port>`, logging errors only, with
 * `options` after), once it listens.
 */
export function spawnServerProcess(
  url: string,
  port: number,
  options: string[],
  stderr: "piped" | "inherit" = "piped",
): Promise<Deno.ChildProcess> {
  return spawnListening(
    Deno.execPath(),
    [
      "run",
      ...RUNTIME_FLAGS,
      "-A",
      CLI,
      "server",
      url,
      `127.0.0.1:${port}`,
      "--log-level",
      "error",
      ...options,
    ],
    port,
    stderr,
  );
}

/** Starts the server on the one backup `storage`, over wire v1, once it listens. */
export function spawnServer(
  storage: string,
  port: number,
  stderr: "piped" | "inherit" = "piped",
): Promise<Deno.ChildProcess> {
  return spawnServerProcess(`file://${storage}`, port, ["--allow-v1"], stderr);
}
