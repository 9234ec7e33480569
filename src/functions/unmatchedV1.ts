import { register } from '../functions-adapter';
import { routes } from '../routes';

register(routes.unmatchedV1);
