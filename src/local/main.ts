/**
 * `npm start`'s entry. An older Node is refused in words before the gateway
 * loads: its libraries fail on one with a stack trace that names none of this.
 */
import { tooOldNode } from './node-version';

const tooOld = tooOldNode(process.versions.node);
if (tooOld !== undefined) {
  console.error(tooOld);
  process.exit(1);
}
// Loaded only now, so that nothing of the gateway runs on a Node it cannot run on.
(require('./run') as typeof import('./run')).started();
