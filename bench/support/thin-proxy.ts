/**
 * The calibration floor for `npm run bench`: the thinnest honest proxy for the
 * same job, written the way a developer would in an afternoon on node:http with
 * a keep-alive agent. It checks the key, parses the body for `model`, picks a
 * deployment round-robin and pipes the answer back (both halves are in
 * floor-front.ts, which the ladder's rungs share); nothing else (no request
 * id, no log line, no failover, no usage). Run in a process of its own, like the
 * gateway, so both are measured alike.
 */
import { floorServer, listen, nodeHttpSend } from './floor-front';

listen(floorServer(nodeHttpSend()), 'thin proxy');
