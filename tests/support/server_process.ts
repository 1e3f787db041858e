/**
 * Our backup server as its own process (`cli.ts server`), as an operator runs it, for the
 * tests and benchmarks that kill or time it.
 *
 * @module
 */
import { RUNTIME_FLAGS } from "../../lib/cli/runtime_flags.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/**
 * Ports below Linux's ephemeral range (32768 and up by default), where neither a listener on
 * port 0 nor a client connection's own port is ever placed.
 */
const PORTS = { from: 20_000, to: 32_767 };
const handedOut = new Set<number>();

/**
 * A loopback port nothing listens on (just now), never handed out before by this process. A
 * test that kills a server and starts it again on the same port leaves that port unbound
 * meanwhile: a port the kernel picked for port 0 could then go to a server that another test
 * running at the same time starts (a restarted plugin then met a stranger's empty backup).
 */
export function freePort(): number {
  for (;;) {
    const port = PORTS.from + Math.floor(Math.random() * (PORTS.to - PORTS.from + 1));
    if (handedOut.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) continue;
      throw error;
    }
    handedOut.add(port);
    return port;
  }
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
