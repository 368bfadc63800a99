/* The IndexedDB outbox (ops waiting to be sent) and the ids the server gave drawn polygons. */
import { C, user } from "./config.js";

const dbReady = new Promise((resolve, reject) => {
  const r = indexedDB.open("croplayer-workspace", 1);
  r.onupgradeneeded = () => {
    r.result.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
    r.result.createObjectStore("ids"); // client key of a drawn polygon -> server id
  };
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});
async function idb(store, mode, fn) {
  const db = await dbReady;
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const req = fn(tx.objectStore(store));
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onerror = () => reject(tx.error);
  });
}
export const outboxAll = async () => (await idb("outbox", "readonly", st => st.getAll()))
  .filter(op => op.block === C.block && op.user === user);
export const outboxPut = op => idb("outbox", "readwrite", st => st.put(op));
export const outboxDelete = seq => idb("outbox", "readwrite", st => st.delete(seq));
export const idGet = key => idb("ids", "readonly", st => st.get(key));
export const idPut = (key, id) => idb("ids", "readwrite", st => st.put(id, key));
