// Issue 10: reads a record saved by sanjin with the official JavaScript automerge and prints,
// one JSON line per change, what any automerge client sees: the change's hash, actor, `time`
// (automerge's unit, unix seconds), that time as a date, and its message. The first line is the
// record's root (`id`, `kind`), to show the document itself loads.
//
// Usage: node read_changes.mjs <saved document>
import { readFileSync } from "node:fs";
import * as Automerge from "@automerge/automerge";

const file = process.argv[2];
if (!file) {
  console.error("usage: node read_changes.mjs <saved document>");
  process.exit(2);
}
const doc = Automerge.load(new Uint8Array(readFileSync(file)));
console.log(JSON.stringify({ id: doc.id, kind: doc.kind, by: doc.by }));
for (const bytes of Automerge.getAllChanges(doc)) {
  const c = Automerge.decodeChange(bytes);
  const date = new Date(c.time * 1000);
  console.log(
    JSON.stringify({
      hash: c.hash,
      actor: c.actor,
      time: c.time,
      date: Number.isNaN(date.getTime()) ? null : date.toISOString(),
      message: c.message ?? null,
    }),
  );
}
