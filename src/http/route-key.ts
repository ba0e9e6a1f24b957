/** A path as the router matches it: case-blind, one optional trailing slash. */
export const routeKey = (path: string) => path.toLowerCase().replace(/(.)\/$/, '$1');
