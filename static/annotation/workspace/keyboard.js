/* The workspace's keys (the labelling panel's shifted and Alt keys are panel.js's). */
import { C } from "./config.js";
import { clearProblem, markNegative, redo, select, setSubtype, stopTools, tool, undo } from "./drawing.js";
import { hint, map } from "./map.js";
import { setSource, toggleCompare } from "./sample.js";

document.addEventListener("keydown", ev => {
  if (ev.target.closest("input[type=text], textarea, select")) return;
  const k = ev.key.toLowerCase();
  if ((ev.ctrlKey || ev.metaKey) && k === "z") { ev.preventDefault(); if (ev.shiftKey) redo(); else undo(); return; }
  if ((ev.ctrlKey || ev.metaKey) && k === "y") { ev.preventDefault(); redo(); return; }
  // Shifted and Alt keys belong to the labelling panel (verdicts, coverage, next block).
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.shiftKey) return;
  const subtype = C.subtypes.find(st => st.key === ev.key);
  if (subtype) { setSubtype(subtype.value); return; }
  if (k === "enter") {
    if (map.pm.Draw.Polygon.enabled()) map.pm.Draw.Polygon._finishShape();
    else if (map.pm.Draw.Line.enabled()) map.pm.Draw.Line._finishShape();
    return;
  }
  if (k === "escape") { stopTools(); select(null); hint(""); clearProblem(); return; }
  const src = C.sources.find(x => x.slug[0] === k);
  if ((k === "m" || k === "g") && src) { setSource(src.slug); return; }
  const action = {
    p: "polygon", r: "rectangle", f: "freehand", e: "edit", v: "move", x: "cut", s: "split",
    u: "merge", o: "prediction", delete: "delete", backspace: "delete",
  }[k];
  if (action) { ev.preventDefault(); tool(action); return; }
  if (k === "n") markNegative();
  else if (k === "c") toggleCompare();
});
