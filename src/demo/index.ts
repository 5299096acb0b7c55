/**
 * `hostpull demo`: the walkthrough on real Debian packages, as events for the CLI to render.
 */
export { type DemoEvent } from './events.js';
export { runDemo } from './run-demo.js';
