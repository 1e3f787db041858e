import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { nodeDatabase } from "./node_database.ts";

function withDirs(body: (dir: string) => void): void {
  const base = Deno.makeTempDirSync({ prefix: "node-database-" });
  try {
    Deno.mkdirSync(`${base}/bitcoin`);
    body(`${base}/bitcoin`);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

Deno.test("nodeDatabase: lightningd.sqlite3 in the network directory without a wallet line", () => {
  withDirs((dir) => {
    assertEquals(nodeDatabase(dir, "Cannot init"), `${dir}/lightningd.sqlite3`);
    Deno.writeTextFileSync(`${dir}/config`, "# wallet=sqlite3:///elsewhere.sqlite3\nalias=x\n");
    assertEquals(nodeDatabase(dir, "Cannot init"), `${dir}/lightningd.sqlite3`);
  });
});

Deno.test("nodeDatabase: the last wallet line's SQLite file, its replica left out, relative to the network directory", () => {
  withDirs((dir) => {
    Deno.writeTextFileSync(`${dir}/../config`, "wallet=sqlite3:///srv/base.sqlite3\n");
    assertEquals(nodeDatabase(dir, "Cannot init"), "/srv/base.sqlite3");
    Deno.writeTextFileSync(`${dir}/config`, "include more.conf\n");
    Deno.writeTextFileSync(
      `${dir}/more.conf`,
      "wallet = sqlite3://db/main.sqlite3:/mnt/replica/main.sqlite3\n",
    );
    assertEquals(nodeDatabase(dir, "Cannot init"), `${dir}/db/main.sqlite3`);
  });
});

Deno.test("nodeDatabase: a PostgreSQL wallet, one without a file, or a config that cannot be read, is refused in one line", () => {
  withDirs((dir) => {
    Deno.writeTextFileSync(`${dir}/config`, "wallet=postgres://user:pw@localhost:5432/cln\n");
    assertThrows(
      () => nodeDatabase(dir, "Cannot init"),
      new RegExp(
        `^Cannot init: ${dir}/config sets wallet= to a postgres database: lightningd hands ` +
          "plugins the changes of a SQLite database only",
      ),
    );
    for (const value of ["", "sqlite3://", "sqlite3://:/mnt/replica.sqlite3"]) {
      Deno.writeTextFileSync(`${dir}/config`, `wallet=${value}\n`);
      assertThrows(
        () => nodeDatabase(dir, "Cannot init"),
        new RegExp(
          `^Cannot init: ${dir}/config sets wallet= without a database file: give it the ` +
            "database's path",
        ),
      );
    }
    Deno.writeTextFileSync(`${dir}/config`, "include missing.conf\n");
    assertThrows(
      () => nodeDatabase(dir, "Cannot init"),
      /^Cannot init: cannot read lightningd's config to find its database: .*missing\.conf.*: fix it, as lightningd would not start on it either$/,
    );
  });
});

Deno.test("nodeDatabase: a relative path is taken from the real network directory, as lightningd's working directory", () => {
  withDirs((dir) => {
    // The network directory reached through a link, as a node moved to another disk is.
    const base = Deno.realPathSync(`${dir}/..`);
    Deno.mkdirSync(`${base}/disk/bitcoin`, { recursive: true });
    Deno.removeSync(dir);
    Deno.symlinkSync(`${base}/disk/bitcoin`, dir);
    Deno.writeTextFileSync(`${dir}/config`, "wallet=sqlite3://../ssd/node.sqlite3\n");
    assertEquals(nodeDatabase(dir, "Cannot init"), `${base}/disk/ssd/node.sqlite3`);
  });
});
