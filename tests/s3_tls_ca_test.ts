/**
 * An S3-compatible store behind https whose certificate the operator's own CA issued (a
 * MinIO or Garage at home, behind its reverse proxy): the real RGW behind TLS on loopback.
 * With `ca=` naming the CA's PEM file, init, the plugin its launcher starts, and restore all
 * reach it; without, or with another CA, nothing is written and the line says what to do.
 */
import { assertEquals, assertMatch } from "./support/assert.ts";
import { dumpDatabase } from "./support/dump.ts";
import { launchAndCommit } from "./support/launch_probe.ts";
import { writeCredentials } from "./support/rgw.ts";
import { rgwTest, sharedRgw } from "./support/shared_rgw.ts";
import { makeCa } from "./support/test_ca.ts";
import { TlsFront } from "./support/tls_front.ts";
import { BufferedOutput, makeNodeDir, removeNodeDir } from "./support/cli_testing.ts";
import { existsSync } from "../lib/fs/exists.ts";
import { init } from "../lib/cli/init.ts";
import { restore } from "../lib/cli/restore.ts";
import { LAUNCHER_NAME, parseLauncher } from "../lib/cli/launcher.ts";

const ca = await makeCa("home CA");
const otherCa = await makeCa("another CA");

rgwTest(
  "an https endpoint a private CA certified: reached with ca=, refused in words without",
  async () => {
    const s = sharedRgw({ exportKeys: true });
    const front = new TlsFront(s.port, await ca.issue(["localhost"]));
    const dir = makeNodeDir("restart");
    try {
      writeCredentials(dir, s.credentials);
      const caFile = `${Deno.realPathSync(`${dir}/..`)}/home-ca.pem`;
      const otherFile = `${Deno.realPathSync(`${dir}/..`)}/other-ca.pem`;
      Deno.writeTextFileSync(caFile, ca.cert);
      Deno.writeTextFileSync(otherFile, otherCa.cert);
      const base = `s3://${await s.bucket()}/node?endpoint=https://localhost:${front.port}` +
        `&path-style=1`;

      const untrusted = new BufferedOutput();
      assertEquals(await init(["--lightning-dir", dir, base], untrusted), 1);
      assertMatch(
        untrusted.stderr.join("\n"),
        /invalid peer certificate: UnknownIssuer: the endpoint's certificate chains to no CA this machine trusts: if a CA of your own issued it, name its PEM file with ca=\/path in the URL/,
      );
      const wrong = new BufferedOutput();
      assertEquals(await init(["--lightning-dir", dir, `${base}&ca=${otherFile}`], wrong), 1);
      assertMatch(
        wrong.stderr.join("\n"),
        new RegExp(`must chain to a CA in "${otherFile}" \\(the URL's ca=\\) or a public one`),
      );
      assertEquals(existsSync(`${dir}/backup.lock`), false);

      const url = `${base}&ca=${caFile}`;
      const output = new BufferedOutput();
      assertEquals(await init(["--lightning-dir", dir, url], output), 0, output.transcript);
      // The launcher lets the plugin read the CA file, and reach the endpoint only.
      const launcher = `${dir}/${LAUNCHER_NAME}`;
      const { args } = parseLauncher(Deno.readTextFileSync(launcher))!;
      const read = args.find((a) => a.startsWith("--allow-read="))!;
      assertEquals(read.split("=")[1].split(",").includes(caFile), true, read);
      assertEquals(
        args.find((a) => a.startsWith("--allow-net=")),
        `--allow-net=localhost:${front.port}`,
      );
      const lightningd = await launchAndCommit(dir, launcher, 5);
      try {
        assertEquals((await lightningd.stop()).code, 0);
      } finally {
        await lightningd.kill().catch(() => {});
      }
      const target = `${dir}/../restored.sqlite3`;
      const restored = new BufferedOutput();
      assertEquals(await restore([url, target], restored), 0, restored.transcript);
      assertEquals(dumpDatabase(target), dumpDatabase(`${dir}/lightningd.sqlite3`));
    } finally {
      await front.close();
      removeNodeDir(dir);
    }
  },
);
