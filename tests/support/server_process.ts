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
 * port 0 nor a client connection's own port is ever placed, cut into blocks.
 */
const PORTS = { from: 20_000, to: 32_767 };
const BLOCK_PORTS = 128;
const BLOCKS = Math.floor((PORTS.to - PORTS.from + 1) / BLOCK_PORTS);
/** Block `i` is claimed by listening on `MARKERS_FROM + i`, just below {@linkcode PORTS}. */
const MARKERS_FROM = PORTS.from - BLOCKS;

/**
 * This test file's block of ports, claimed for as long as it runs. Test files run side by side
 * as workers of one `deno test`, each with its own module state: a claim every worker can see
 * is needed, and a listener is one the kernel drops when the worker ends. Taken as the module
 * loads, before any test, so no test's resource check counts it.
 */
const block = claimBlock();
const handedOut = new Set<number>();

function claimBlock(): { first: number; marker: Deno.Listener } {
  const start = Math.floor(Math.random() * BLOCKS);
  for (let k = 0; k < BLOCKS; k++) {
    const index = (start + k) % BLOCKS;
    try {
      const marker = Deno.listen({ hostname: "127.0.0.1", port: MARKERS_FROM + index });
      return { first: PORTS.from + index * BLOCK_PORTS, marker };
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error(`Cannot claim a block of test ports: all ${BLOCKS} are held by other tests`);
}

/**
 * A loopback port nothing listens on (just now), from this test file's block, never handed out
 * before. A test that kills a server and starts it again on the same port leaves that port
 * unbound meanwhile: from a range shared with the tests running beside it, the port could go
 * to a server that one of them starts (a restarted plugin then met a stranger's empty backup).
 */
export function freePort(): number {
  for (;;) {
    // Handed out, or found taken by another program (a server a killed run left).
    if (handedOut.size === BLOCK_PORTS) {
      throw new Error(`freePort: this test file has tried all ${BLOCK_PORTS} ports of its block`);
    }
    const port = block.first + Math.floor(Math.random() * BLOCK_PORTS);
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) continue;
      throw error;
    }
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
