/**
 * An error whose message is all the operator needs (a bad setting, a database in use, a pending or edited
 * migration, a refused start): the CLI prints it as one line and exits 2, without a stack. Kept in a module of
 * its own, importing nothing, so the CLI can tell these errors apart without loading the modules that throw them.
 */
export class OperatorError extends Error {}
