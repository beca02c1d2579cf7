// Options shared by the commands that load a GILL (run, chat, index): -m ROOT, the per-component overrides,
// --dtype.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "pipeline/gill_model.h"

namespace gill::cli {

struct GillLoadArgs {
  std::string root, lm, clip, sd, gill, index;
  std::string dtype = "fp32";
  pipeline::GILLModelOptions to_options(bool load_sd) const;
};

inline void add_gill_load_options(CLI::App* sub, GillLoadArgs& a) {
  sub->add_option("-m,--model", a.root, "Weights root (layout: weights/README.md)");
  sub->add_option("--lm", a.lm, "OPT folder (overrides the root)");
  sub->add_option("--clip", a.clip, "CLIP folder (overrides the root)");
  sub->add_option("--sd", a.sd, "Stable Diffusion folder (overrides the root)");
  sub->add_option("--gill", a.gill, "GILL folder: model_args.json, pretrained_ckpt, decision model");
  sub->add_option("--index", a.index, "Retrieval index (a `gill index` folder)");
  sub->add_option("--dtype", a.dtype, "fp32 | bf16 for the whole pipeline")->capture_default_str();
}

}  // namespace gill::cli
