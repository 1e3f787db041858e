import { assertEquals, assertThrows } from "./support/assert.ts";
import { freePort } from "./support/server_process.ts";

const SERVER_PROCESS = new URL("./support/server_process.ts", import.meta.url).href;

/** What `count` calls of freePort give in a worker: another test file's copy of the module. */
function portsOfAnotherTestFile(count: number): Promise<number[]> {
  const source = `import { freePort } from "${SERVER_PROCESS}";
    postMessage(Array.from({ length: ${count} }, () => freePort()));`;
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
  // files, 256 random picks each would meet with a chance of 99%.
  const mine = new Set(Array.from({ length: 256 }, () => freePort()));
  assertEquals(mine.size, 256);
  const theirs = await portsOfAnotherTestFile(256);
  assertEquals(theirs.filter((port) => mine.has(port)), []);
  assertThrows(() => freePort(), /^freePort: this test file has used all 256 ports of its block$/);
});
