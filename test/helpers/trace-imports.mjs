// Loaded with `node --import` (through NODE_OPTIONS): every package the process imports,
// one name a line, appended to the file GAFFER_TEST_IMPORTS names. Node's module hooks run
// on a thread of their own; this one only writes down what it was asked to resolve.
import { register } from "node:module";

register("./trace-imports-hooks.mjs", import.meta.url);
