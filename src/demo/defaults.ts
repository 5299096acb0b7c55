/** The demo's work directory: what one run builds (packages, base, layout) is reused by the next. */
export const DEFAULT_DEMO_WORK = '/var/tmp/hostpull-demo';
