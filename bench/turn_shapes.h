// The shapes `gill-bench turn` builds its components at: the published configs (real) or a tiny set.
#pragma once
#include <string>

#include "models/clip_text.h"
#include "models/clip_vision.h"
#include "models/gill_args.h"
#include "models/opt.h"
#include "models/unet_2d.h"
#include "models/vae.h"
#include "schedulers/scheduler.h"

namespace gill::cli::bench {

// The components' shapes: the published configs (real) or a tiny set for smoke tests.
struct Shapes {
  models::OPTConfig opt;
  models::CLIPVisionConfig clip;
  models::GILLDims dims;
  models::UNet2DConditionConfig unet;
  models::AutoencoderKLConfig vae;
  models::CLIPTextConfig text;
};

// `shape`: real | tiny (kInvalidArgument otherwise).
Shapes make_shapes(const std::string& shape);

// SD v1.5's scheduler/scheduler_config.json.
schedulers::SchedulerConfig sd15_scheduler();

}  // namespace gill::cli::bench
