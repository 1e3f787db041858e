import { assert, assertEquals } from "./support/assert.ts";
import { freePort } from "./support/server_process.ts";

const SERVER_PROCESS = new URL("./support/server_process.ts", import.meta.url).href;

/** Every port freePort gives until its block is used up: from one test file's block. */
function allPorts(): number[] {
  const ports: number[] = [];
  for (;;) {
    try {
      ports.push(freePort());
    } catch (error) {
      if (
        /^freePort: this test file has tried all \d+ ports of its block$/.test(
          (error as Error).message,
        )
      ) {
        return ports;
      }
      throw error;
    }
  }
}

/** {@linkcode allPorts} in a worker: another test file's copy of the module. */
function portsOfAnotherTestFile(): Promise<number[]> {
  const source = `import { freePort } from "${SERVER_PROCESS}";
    const ports = [];
    try {
      for (;;) ports.push(freePort());
    } catch {
      postMessage(ports);
    }`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  return new Promise<number[]>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
  }).finally(() => {
    worker.terminate();
    URL.revokeObjectURL(url);
  });
}

Deno.test("freePort: a port handed out here, left unbound, never goes to a test file running beside this one", async () => {
  // Unbound, as between a server's kill and its restart. From one range shared by both
  // files, 128 random picks each would meet with a chance of 72%.
  const mine = new Set(allPorts());
  // A few may be taken by other programs; most of the block is free on a test machine.
  assert(mine.size > 64, `only ${mine.size} ports`);
  const theirs = await portsOfAnotherTestFile();
  assert(theirs.length > 64, `only ${theirs.length} ports in the worker`);
  assertEquals(theirs.filter((port) => mine.has(port)), []);
});
