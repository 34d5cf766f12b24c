// Streams a compiled model's story into the page (index.html): model.mjs and model.wasm
// are what `bitnetc MODEL --target=wasm32-simd -o model.mjs` wrote beside this file.
import { load } from "./model.mjs";

const $ = (id) => document.getElementById(id);
const showMemory = (model) => { $("memory").textContent = `${(model.memoryBytes / 1048576).toFixed(1)} MB`; };

try {
  const model = await load({ maxMemoryMB: 1024 });
  $("status").textContent = `ready (${model.info.architecture}, ${model.info.target})`;
  showMemory(model);
  $("generate").disabled = false;
  let controller = null;
  $("stop").onclick = () => controller && controller.abort();
  $("generate").onclick = async () => {
    controller = new AbortController();
    $("generate").disabled = true;
    $("stop").disabled = false;
    $("output").textContent = $("prompt").value;
    $("status").textContent = "generating";
    const options = { maxTokens: Number($("max-tokens").value), temperature: Number($("temperature").value),
                      signal: controller.signal };
    try {
      for await (const piece of model.stream($("prompt").value, options)) {
        $("output").textContent += piece;
        showMemory(model);
      }
      $("status").textContent = "done";
    } catch (e) {
      $("status").textContent = e.name === "AbortError" ? "stopped" : `error: ${e.message}`;
    }
    $("generate").disabled = false;
    $("stop").disabled = true;
  };
} catch (e) {
  $("status").textContent = `error: ${e.message}`;
}
