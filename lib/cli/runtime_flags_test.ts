import { assert, assertEquals } from "../../tests/support/assert.ts";
import { RUNTIME_FLAGS } from "./runtime_flags.ts";

/** The size of V8's new space after a run that keeps some of what it allocates. */
async function newSpaceBytes(flags: readonly string[]): Promise<number> {
  const script = `
    import { getHeapSpaceStatistics } from "node:v8";
    const kept = [];
    for (let i = 0; i < 3_000_000; i++) {
      const o = { i, s: "x" + i };
      if (i % 3 === 0) kept.push(o);
      if (kept.length > 200_000) kept.length = 0;
    }
    console.log(getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size);
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", ...flags, script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  return Number(new TextDecoder().decode(output.stdout));
}

Deno.test("the runtime flags keep V8's young generation at 2 MiB a semi-space", async () => {
  const MiB = 1 << 20;
  const grown = await newSpaceBytes([]);
  const kept = await newSpaceBytes(RUNTIME_FLAGS);
  assert(grown > 8 * MiB, `without the flags: ${grown}`);
  // The new space is two semi-spaces.
  assert(kept <= 4 * MiB, `with the flags: ${kept}`);
});

Deno.test("every deno task that runs the plugin or the CLI passes the runtime flags", () => {
  const config = JSON.parse(
    Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)),
  ) as { tasks: Record<string, { command: string }> };
  const runs = Object.entries(config.tasks).filter(([, task]) =>
    /^deno (run|compile) .*\b(cli|plugin)\.ts\b/.test(task.command)
  );
  assertEquals(
    runs.map(([name]) => name).sort(),
    [
      "compact",
      "compile:cli",
      "doctor",
      "init",
      "mirror",
      "plugin",
      "rekey",
      "restore",
      "server",
      "status",
      "upgrade",
      "verify",
    ],
  );
  for (const [name, task] of runs) {
    const words = task.command.split(" ");
    for (const flag of RUNTIME_FLAGS) assert(words.includes(flag), `${name}: ${task.command}`);
  }
});
