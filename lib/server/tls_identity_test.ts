import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { existsSync } from "../fs/exists.ts";
import { initTlsIdentity, TLS_CERT_NAME, TLS_KEY_NAME } from "./tls_identity.ts";

Deno.test("init-tls whose certificate is in place when the root's sync fails leaves neither file: a rerun makes both", async () => {
  const root = Deno.makeTempDirSync({ prefix: "tls-identity-" });
  const openSync = Deno.openSync;
  try {
    // The directory sync after the certificate's rename fails (EIO): the rename stands.
    Deno.openSync = ((path: string | URL, options?: Deno.OpenOptions) => {
      if (String(path) === root && existsSync(`${root}/${TLS_CERT_NAME}`)) {
        throw new Error("Input/output error (os error 5)");
      }
      return openSync(path, options);
    }) as typeof Deno.openSync;
    await assertRejects(() => initTlsIdentity(root), /Input\/output error/);
    Deno.openSync = openSync;
    // A certificate without its key is no identity, and would refuse the rerun as one nodes pin.
    assertEquals([...Deno.readDirSync(root)].map((entry) => entry.name), []);
    await initTlsIdentity(root);
    assertEquals(existsSync(`${root}/${TLS_KEY_NAME}`), true);
  } finally {
    Deno.openSync = openSync;
    Deno.removeSync(root, { recursive: true });
  }
});
