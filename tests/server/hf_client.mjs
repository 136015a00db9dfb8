// Hugging Face's own JavaScript client (@huggingface/inference) against
// bct serve: textClassification({endpointUrl, inputs}) posts {"inputs"} to
// the URL and reads response[0] as the list of {label, score}.
// Usage: node hf_client.mjs MODULE_DIR URL API_KEY; prints the labels
// and scores, one "label score" line each.
import { createRequire } from "node:module";
import path from "node:path";

const [dir, url, key] = process.argv.slice(2);
const require = createRequire(path.join(dir, "package.json"));
const hf = require("@huggingface/inference");
const client = new hf.InferenceClient(key);
const out = await client.textClassification({
  endpointUrl: url,
  inputs: "a charming and often affecting journey",
});
for (const { label, score } of out) console.log(`${label} ${score}`);
