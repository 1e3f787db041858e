import { assertEquals } from "../../tests/support/assert.ts";
import { cliCommand, INVOKED_AS_ENV, nameCommandsAsInvoked } from "./advised_command.ts";

const envOf = (vars: Record<string, string>) => ({ get: (name: string) => vars[name] });

Deno.test("a command is named as the operator ran this program, or as cln-backup", () => {
  try {
    nameCommandsAsInvoked(envOf({ INIT_CWD: "/home/op" }));
    assertEquals(
      cliCommand("upgrade", "--lightning-dir d"),
      "deno task upgrade -- --lightning-dir d",
    );
    assertEquals(cliCommand("init"), "deno task init");
    // backup-cli unsets INIT_CWD; a deno task that runs it still names backup-cli.
    nameCommandsAsInvoked(envOf({ [INVOKED_AS_ENV]: "./backup-cli", INIT_CWD: "/x" }));
    assertEquals(
      cliCommand("doctor", "--lightning-dir d"),
      "./backup-cli doctor --lightning-dir d",
    );
    nameCommandsAsInvoked(envOf({ [INVOKED_AS_ENV]: "/opt/my tools/backup-cli" }));
    assertEquals(cliCommand("verify"), "'/opt/my tools/backup-cli' verify");
    nameCommandsAsInvoked(envOf({}));
    assertEquals(cliCommand("status", "u"), "cln-backup status u");
  } finally {
    nameCommandsAsInvoked(envOf({}));
  }
});

Deno.test("under deno task, a server node command's words go after --, where the task reads them", () => {
  // `deno task server init-tls -- --help` ran init-tls with "--help" for its root: it made a
  // TLS key and certificate in ./--help.
  try {
    nameCommandsAsInvoked(envOf({ INIT_CWD: "/home/op" }));
    assertEquals(cliCommand("server init-tls", "--help"), "deno task server -- init-tls --help");
    assertEquals(cliCommand("server add-node"), "deno task server -- add-node");
    nameCommandsAsInvoked(envOf({ [INVOKED_AS_ENV]: "./backup-cli" }));
    assertEquals(cliCommand("server init-tls", "--help"), "./backup-cli server init-tls --help");
  } finally {
    nameCommandsAsInvoked(envOf({}));
  }
});
