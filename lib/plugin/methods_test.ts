import { bindParams, type RpcMethod } from "./methods.ts";
import { RpcError } from "./jsonrpc.ts";
import { assertEquals, assertRejects } from "../../tests/support/assert.ts";

const method = (params: string[]): RpcMethod => ({
  name: "m",
  usage: "",
  description: "",
  params,
  run: () => ({}),
});

Deno.test("bindParams: a list binds by position, an object by name, nothing to {}", () => {
  const two = method(["a", "b"]);
  assertEquals(bindParams(two, undefined), {});
  assertEquals(bindParams(two, null), {});
  assertEquals(bindParams(two, []), {});
  assertEquals(bindParams(two, [1]), { a: 1 });
  assertEquals(bindParams(two, [1, "x"]), { a: 1, b: "x" });
  assertEquals(bindParams(two, { b: true }), { b: true });
  assertEquals(bindParams(method([]), {}), {});
});

Deno.test("bindParams: too many, unknown names or a scalar are one -32602 error", async () => {
  const refused: [string[], unknown, string][] = [
    [[], [true], "Cannot run m: 1 parameter given; it takes no parameters"],
    [["a"], [1, 2], 'Cannot run m: 2 parameters given; it takes "a"'],
    [["a", "b"], { c: 1 }, 'Cannot run m: no parameter "c"; it takes "a", "b"'],
    [[], { verbose: true }, 'Cannot run m: no parameter "verbose"; it takes no parameters'],
    [["a"], "x", 'Cannot run m: params must be a list or an object; it takes "a"'],
    [["a"], 5, 'Cannot run m: params must be a list or an object; it takes "a"'],
  ];
  for (const [takes, params, message] of refused) {
    const error = await assertRejects(() => bindParams(method(takes), params));
    assertEquals(error instanceof RpcError && error.toJSON(), {
      code: -32602,
      message,
      data: { params },
    });
  }
});

Deno.test("bindParams: a refusal sends long params back as their size, not whole", async () => {
  const params = { verbose: "x".repeat(2_000) };
  const error = await assertRejects(() => bindParams(method([]), params));
  assertEquals(error instanceof RpcError && error.toJSON(), {
    code: -32602,
    message: 'Cannot run m: no parameter "verbose"; it takes no parameters',
    data: { params_bytes: 2_014 },
  });
});

Deno.test("bindParams: params past 1 KiB in UTF-8 are sent back as their size in bytes", async () => {
  // 414 characters of JSON, 1,214 bytes.
  const params = { verbose: "\u20ac".repeat(400) };
  const error = await assertRejects(() => bindParams(method([]), params));
  assertEquals(error instanceof RpcError && error.toJSON(), {
    code: -32602,
    message: 'Cannot run m: no parameter "verbose"; it takes no parameters',
    data: { params_bytes: 1_214 },
  });
});
