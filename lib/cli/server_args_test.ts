import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { parseCommandArgs, UsageError } from "./args.ts";
import { SERVER_SPEC, serverArgs } from "./server_args.ts";

function parse(args: string[]) {
  const parsed = parseCommandArgs(SERVER_SPEC, args);
  assert(parsed !== "help");
  return serverArgs(parsed);
}

Deno.test("server takes the Python backup-cli's arguments", () => {
  assertEquals(parse(["file:///srv/node1", "127.0.0.1:8700"]), {
    url: "file:///srv/node1",
    listen: { hostname: "127.0.0.1", port: 8700 },
    logMode: "plain",
    logLevel: "info",
  });
  // As a systemd unit of the Python plugin runs it; click's choices ignore case.
  assertEquals(
    parse(["file:///srv/b", "[::1]:8700", "--log-mode", "SystemD", "--log-level=WARNING"]),
    {
      url: "file:///srv/b",
      listen: { hostname: "::1", port: 8700 },
      logMode: "systemd",
      logLevel: "warning",
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
  assertEquals(missing.message, '"server" takes <url> <addr:port>, got 1 argument(s)');
});
