"""Human-readable help for the audio tasks and parameters, shown by the CLI."""
TASK_DESCRIPTIONS = {
    "amp_modelling": "Model an amp or pedal from a reamp capture (dry input → recorded output); metric: "
                     "validation ESR (< 0.01 great, < 0.035 not bad, < 0.1 might sound ok). Exports a .nam file.",
    "knob_modelling": "Model an amp or pedal at every setting of its knobs from a knob capture (one recording per "
                      "setting, or generated); metric: validation ESR at seen, unseen and outside-range settings. "
                      "Writes the knob model and plain .nam snapshots at the corners of the knob ranges.",
}
PARAM_DESCRIPTIONS = {
    "dataset.input_path": "the dry signal sent to the gear (WAV, mono, 44.1/48 kHz); leave out both paths to use "
                          "the generated capture",
    "dataset.output_path": "the recording of the gear, same rate and length as the input",
    "dataset.latency": "'auto' (from the blips of the standard input) or the interface delay in samples",
    "dataset.generated_seconds": "length of the generated capture (40 s trains in minutes on a laptop CPU)",
    "dataset.ny": "output samples per training window (NAM: 8192)",
    "dataset.knobs": "knob_capture: the knobs, {gain: {min: 0, max: 10, default: 5}, bright: {type: bool}} (a "
                     "generated capture also names the device setting each one controls and its device_range)",
    "dataset.settings": "knob_capture: a CSV / YAML table of the settings (file or start/stop, and one column per "
                        "knob); leave out every path for the generated grid",
    "dataset.metadata": ".nam metadata: name, modeled_by, gear_make, gear_model, gear_type, tone_type, "
                        "input_level_dbu, output_level_dbu",
    "training.model_name": "NAM_WaveNet_nano/feather/lite/standard, NAM_LSTM_*, NAM_Linear, NAM_WaveNet (custom), "
                           "NAM_A2 (NAM 0.13's default: lite + full in one .nam 0.7 container), NAM_A2_lite/full",
    "training.lr_scheduler": "'exponential' is NAM's schedule (gamma 0.994 per epoch); 'cosine' anneals to 0 over "
                             "the run (steadier last epochs)",
    "compilation.enable": "streaming exports in blocks of 512 samples: ONNX float / int8 (block + receptive-field "
                          "context, or LSTM state in/out), TFLite float / int8 / int16x8, each rendered on the "
                          "validation audio block by block (ESR vs PyTorch and vs target, real-time factor)",
    "compilation.exporters": "audio: registered exporters declaring audio, e.g. a subset of onnx, onnx_int8, tflite, "
                             "tflite_int8, tflite_int16 (default: all five)",
    "compilation.calibration_samples": "audio: blocks of training audio for int8 calibration (default 64)",
}
