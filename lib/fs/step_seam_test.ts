import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { parseSeam } from "./step_seam.ts";

Deno.test("step seam: crash or pause at a step, at its n-th occurrence", async () => {
  assertEquals(parseSeam(undefined), undefined);
  assertEquals(parseSeam(""), undefined);
  assertEquals(parseSeam("pause@init-snapshot"), {
    action: "pause",
    step: "init-snapshot",
    nth: 1,
  });
  assertEquals(parseSeam("crash@roll:3"), { action: "crash", step: "roll", nth: 3 });
  for (const bad of ["crash@nowhere", "crash@roll:0", "stop@roll", "crash roll"]) {
    await assertRejects(
      () => Promise.resolve().then(() => parseSeam(bad)),
      /^CLN_BACKUP_SEAM=".*" is not "<crash\|pause>@<step>\[:<n>\]"/,
    );
  }
});
