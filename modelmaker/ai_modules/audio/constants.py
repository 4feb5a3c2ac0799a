"""Names the audio modality uses."""
MODALITY = "audio"
TASK_AMP_MODELLING = "amp_modelling"
TASK_KNOB_MODELLING = "knob_modelling"  # knob captures -> knob models (modelmaker.ai_modules.audio.knob_run)
TASK_TYPES = (TASK_AMP_MODELLING, TASK_KNOB_MODELLING)
DEFAULT_MONITOR = {TASK_AMP_MODELLING: ("val_esr", "min"), TASK_KNOB_MODELLING: ("val_esr", "min")}
DEFAULT_DATASET = "nam_capture"
# Model presets a user picks by name (MODEL_REGISTRY keys).
PRESETS = ("NAM_WaveNet_nano", "NAM_WaveNet_feather", "NAM_WaveNet_lite", "NAM_WaveNet_standard",
           "NAM_LSTM_nano", "NAM_LSTM_feather", "NAM_LSTM_lite", "NAM_LSTM_standard", "NAM_Linear",
           "NAM_A2", "NAM_A2_lite", "NAM_A2_full")
