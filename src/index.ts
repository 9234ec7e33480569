import { app } from '@azure/functions';
import { registerShutdown } from './functions-adapter';

// Chat and speech stream their responses; without this the host buffers them whole.
app.setup({ enableHttpStream: true });
registerShutdown();
