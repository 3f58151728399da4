"""Everything that makes weights: the VLM (phantom pre-training, grade heads, calibration fitting,
LoRA fine-tuning with peft), the segmenter and the 2-D input networks.

The runtime (ingest, anatomy, vlm, grounding, render, pipeline) never imports this package; it
only loads the safetensors + JSON files written here. The `spine-report train*` / `finetune` /
`calibrate` commands and the scripts under scripts/ call into it.
"""
