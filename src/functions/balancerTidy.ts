import { registerTimer } from '../functions-adapter';
import { timers } from '../timers';

registerTimer(timers.balancerTidy);
