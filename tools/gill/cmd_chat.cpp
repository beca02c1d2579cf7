// gill chat -m ROOT — multi-turn dialogue. The LLM's KV cache is kept across turns, so history is never
// recomputed. Lines from stdin: text sends a turn (with any images added before it), `/image PATH` adds an
// image to the next turn, `/reset` forgets the conversation, `/save FILE` writes the transcript, `/quit`.
#include <gill/gill.h>
#include <gill/progress.h>
#include <gill/result_json.h>
#include <unistd.h>

#include <iostream>

#include "api_options.h"
#include "cli_common.h"
#include "gill_outputs.h"
#include "output_checks.h"

namespace gill::cli {

namespace {

struct ChatArgs {
  EngineOptions engine;
  GenerateOptions gen;
  std::string out_dir = "gill-chat";
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

int run_chat(ChatArgs& a, const Context& ctx) {
  a.gen.validate();
  check_output_dir(a.out_dir, "-o");
  const ProgressStyle style = progress_style_for(stderr, ctx.verbosity < 0);
  EngineOptions eo = a.engine;
  eo.threads = ctx.threads;
  eo.on_progress = make_progress_callback(style);
  Engine engine(eo);
  Chat chat = engine.chat();
  chat.set_output_dir(a.out_dir);  // turnN_gen_K.png, turnN_ret_K_I.EXT; the transcript names them
  GenerateOptions go = streamed_to_stdout(a.gen, style);
  const bool interactive = ::isatty(STDIN_FILENO);
  if (interactive)
    std::cerr << "gill chat: type a message; /image PATH adds an image, /reset, /save FILE, /quit\n";
  Prompt pending;
  std::string line;
  while (true) {
    if (interactive) std::cerr << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    const std::string cmd = trim(line);
    if (cmd.empty()) continue;
    try {
      if (cmd == "/quit" || cmd == "/exit") break;
      if (cmd == "/reset") {
        chat.reset();
        pending.clear();
        std::cout << "[conversation reset]\n" << std::flush;
        continue;
      }
      if (cmd.rfind("/save", 0) == 0) {
        const std::string file = trim(cmd.substr(5));
        require(!file.empty(), ErrorCode::kInvalidArgument, "/save needs a file name");
        write_file_atomic(file, chat.transcript_json() + "\n");
        std::cout << "[transcript saved to " << file << "]\n" << std::flush;
        continue;
      }
      if (cmd.rfind("/image", 0) == 0) {
        const std::string path = trim(cmd.substr(6));
        require(!path.empty(), ErrorCode::kInvalidArgument, "/image needs a file name");
        Segment s = Segment::Pixels(read_image(path));  // decode now: a bad file is reported at once
        s.image_path = path;
        pending.push_back(std::move(s));
        std::cout << "[image added: " << path << "]\n" << std::flush;
        continue;
      }
      require(cmd[0] != '/', ErrorCode::kInvalidArgument,
              cat("unknown command '", cmd, "' (expected /image PATH, /reset, /save FILE or /quit)"));
      Prompt p = pending;
      p.push_back(Segment::Text(cmd));
      const Result r = chat.send(p, go);
      std::cout << "\n";
      std::cout << image_lines(r);
      std::cout << std::flush;
      pending.clear();
    } catch (const Error& e) {
      // A bad line does not end the session.
      std::cerr << "gill: error: " << e.what() << "\n";
    }
  }
  return 0;
}

}  // namespace

void register_chat(CLI::App& app, Context& ctx) {
  auto* sub = app.add_subcommand("chat", "Multi-turn GILL dialogue on stdin (KV cache kept across turns)");
  auto a = std::make_shared<ChatArgs>();
  add_engine_options(sub, a->engine);
  add_generate_options(sub, a->gen);
  sub->add_option("-o,--out", a->out_dir, "Folder for the turns' images")->capture_default_str();
  sub->callback([&ctx, a] {
    require(!a->engine.weights_root.empty() || !a->engine.gill_dir.empty(), ErrorCode::kInvalidArgument,
            "gill chat: give -m WEIGHTS_ROOT (or --gill DIR with --lm, --clip, --sd)");
    ctx.action = [&ctx, a] { return run_chat(*a, ctx); };
  });
}

}  // namespace gill::cli
