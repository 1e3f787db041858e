import { assertEquals } from "../../tests/support/assert.ts";
import { whileForking } from "../../tests/support/forking.ts";
import { lockForSetup } from "./setup_lock.ts";

Deno.test("a released set-up lock is free at once, though this process forks meanwhile", async () => {
  const dir = Deno.makeTempDirSync();
  const refused: string[] = [];
  try {
    await whileForking(async () => {
      for (let i = 0; i < 500; i++) {
        try {
          using _held = lockForSetup(dir, `take ${i}`);
          await new Promise((resolve) => setTimeout(resolve, 0));
        } catch (error) {
          refused.push((error as Error).message);
        }
      }
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  // Released by its close alone, the lock stayed held while a child forked meanwhile lived
  // (init's rerun was refused: "another init or upgrade is running").
  assertEquals(refused, []);
});
