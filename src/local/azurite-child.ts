/**
 * Azurite's table service as a child of the local host. The parent holds an
 * IPC channel open; when the parent ends, however it ends (a signal it could
 * not handle included), the channel closes and Azurite ends with it, so
 * nothing is left listening on the port.
 */
import { azuriteTableMain } from './azurite';

process.once('disconnect', () => process.exit(0));
require(azuriteTableMain()!);
