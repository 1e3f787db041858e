import { assertEquals } from "../../tests/support/assert.ts";
import { repairStatement } from "./statement_repair.ts";

Deno.test("repairStatement inserts the space pre-4090 lightningd left out before WHERE", () => {
  assertEquals(
    repairStatement("UPDATE outputs SET status=1, reserved_til=174WHERE prev_out_tx=x'00'"),
    "UPDATE outputs SET status=1, reserved_til=174 WHERE prev_out_tx=x'00'",
  );
  assertEquals(
    repairStatement("UPDATE channels SET peer_id=1WHERE channels.id=2"),
    "UPDATE channels SET peer_id=1 WHERE channels.id=2",
  );
  // The first WHERE is fine, a later one is not.
  assertEquals(
    repairStatement("UPDATE outputs SET note='aWHERE', reserved_til=174WHERE prev_out_tx=x'00'"),
    "UPDATE outputs SET note='aWHERE', reserved_til=174 WHERE prev_out_tx=x'00'",
  );
});

Deno.test("repairStatement leaves other statements alone", () => {
  for (
    const statement of [
      "UPDATE outputs SET reserved_til=174 WHERE prev_out_index=0",
      "WHERE",
      "",
      // Only the two expansions lightningd got wrong are repaired, as the Python plugin does.
      "UPDATE vars SET intval=3WHERE name='x'",
      "UPDATE channels SET peer_id=1WHERE id=2",
    ]
  ) {
    assertEquals(repairStatement(statement), statement);
  }
});
