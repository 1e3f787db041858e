import { assert } from "../../tests/support/assert.ts";
import { checkProof, nonce, prove, randomBytes } from "./handshake.ts";

Deno.test("a proof checks only with its key, role, node and both nonces", async () => {
  const key = randomBytes(32);
  const input = { node: "alice", clientNonce: nonce(), serverNonce: nonce() };
  const proof = await prove(key, "client", input);
  assert(await checkProof(key, "client", input, proof));
  assert(!(await checkProof(randomBytes(32), "client", input, proof)), "another key");
  assert(!(await checkProof(key, "server", input, proof)), "reflected as the server's");
  assert(!(await checkProof(key, "client", { ...input, node: "bob" }, proof)), "another node");
  assert(!(await checkProof(key, "client", { ...input, serverNonce: nonce() }, proof)), "replay");
  assert(!(await checkProof(key, "client", { ...input, clientNonce: nonce() }, proof)));
  assert(!(await checkProof(key, "client", input, proof.subarray(1))), "short proof");
});
