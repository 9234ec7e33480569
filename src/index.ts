import { app } from '@azure/functions';

// Chat and speech stream their responses; without this the host buffers them whole.
app.setup({ enableHttpStream: true });
