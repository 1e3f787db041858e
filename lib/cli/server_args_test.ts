import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { nodeCommandArgs, SERVER_SPEC, serverArgs } from "./server_args.ts";

function parse(args: string[]) {
  const parsed = parseCommandArgs(SERVER_SPEC, args);
  assert(parsed !== "help");
  return serverArgs(parsed);
}

const NO_OPTIONS = {
  allowV1: false,
  allowPlain: false,
  v1Node: undefined,
  quotaBytes: undefined,
  maxConnections: undefined,
  maxPacketBytes: undefined,
  maxV1Connections: undefined,
  metrics: undefined,
};

Deno.test("server takes the Python backup-cli's arguments", () => {
  assertEquals(parse(["file:///srv/node1", "127.0.0.1:8700"]), {
    url: "file:///srv/node1",
    listen: { hostname: "127.0.0.1", port: 8700 },
    logMode: "plain",
    logLevel: "info",
    ...NO_OPTIONS,
  });
  // As a systemd unit of the Python plugin runs it; click's choices ignore case.
  assertEquals(
    parse(["file:///srv/b", "[::1]:8700", "--log-mode", "SystemD", "--log-level=WARNING"]),
    {
      url: "file:///srv/b",
      listen: { hostname: "::1", port: 8700 },
      logMode: "systemd",
      logLevel: "warning",
      ...NO_OPTIONS,
    },
  );
  for (const level of ["debug", "info", "notice", "warning", "error", "critical"]) {
    assertEquals(parse(["file:///b", "0.0.0.0:1", "--log-level", level]).logLevel, level);
  }
});

Deno.test("server refuses a wrong address, log mode or log level", async () => {
  for (
    const [args, message] of [
      [["file:///b", "8700"], '"8700" is not the <addr:port> to listen on'],
      [["file:///b", "[::1:8700"], '"[::1:8700" is not the <addr:port> to listen on'],
      [["file:///b", "h:70000"], '"h:70000" is not the <addr:port> to listen on'],
      [
        ["file:///b", "h:1", "--log-mode", "json"],
        '--log-mode takes plain, systemd, not "json"',
      ],
      [
        ["file:///b", "h:1", "--log-level", "trace"],
        '--log-level takes debug, info, notice, warning, error, critical, not "trace"',
      ],
    ] as const
  ) {
    const error = await assertRejects(() => parse([...args]));
    assert(error instanceof UsageError, String(error));
    assert(error.message.startsWith(message), error.message);
  }
  const missing = await assertRejects(() => parse(["file:///b"]));
  assertEquals(
    missing.message,
    '"server" takes <url> <addr:port> or <add-node|remove-node> <root> <name> or ' +
      "<list-nodes|init-tls> <root>, got 1 argument(s)",
  );
});

Deno.test("server takes --allow-v1, a v1 node, limits, and the node commands", async () => {
  const parsed = parse([
    "file:///srv",
    "127.0.0.1:1",
    "--allow-v1",
    "--v1-node",
    "alice",
    "--quota-bytes",
    "1000",
    "--max-connections=2",
    "--max-packet-bytes",
    "4096",
    "--max-v1-connections",
    "3",
  ]);
  assertEquals(
    [
      parsed.allowV1,
      parsed.v1Node,
      parsed.quotaBytes,
      parsed.maxConnections,
      parsed.maxPacketBytes,
      parsed.maxV1Connections,
    ],
    [true, "alice", 1000, 2, 4096, 3],
  );
  await assertRejects(() => parse(["file:///b", "h:1", "--v1-node", "a"]), /goes with --allow-v1/);
  await assertRejects(() => parse(["file:///b", "h:1", "--quota-bytes", "0"]), /whole number/);
  const nodes = (args: string[]) => {
    const p = parseCommandArgs(SERVER_SPEC, args);
    assert(p !== "help");
    return nodeCommandArgs(p);
  };
  assertEquals(nodes(["add-node", "/srv", "alice"]), {
    command: "add-node",
    root: "/srv",
    name: "alice",
  });
  assertEquals(nodes(["list-nodes", "/srv"])?.command, "list-nodes");
  assertEquals(nodes(["file:///srv", "h:1"]), undefined);
  await assertRejects(() => nodes(["list-nodes", "/srv", "x"]), /takes <root>, got 2/);
});
