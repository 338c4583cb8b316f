// The workflow bundle's entry point: every workflow the worker runs is exported here.
export { rerateWorkflow } from './rerate';
export { subscriptionWorkflow } from './subscription';
export { reconciliationWorkflow } from './janitor';
export { walletWorkflow } from './wallet';
