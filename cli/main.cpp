// kiln: train, evaluate and inspect image classifiers.
//
//   kiln train DATA --model resnet20 --epochs 30 --out runs/cifar
//   kiln eval runs/cifar/last.kiln DATA
//   kiln predict runs/cifar/last.kiln photo.jpg --top 5
//   kiln info runs/cifar/last.kiln
//   kiln data-report DATA
//   kiln report runs/cifar
//   kiln explain runs/cifar/last.kiln photo.jpg --top 3
//   kiln pack data/cifar10 packs/cifar10.kpack
//   kiln export runs/cifar/last.kiln --onnx cifar.onnx
//   kiln quantize runs/cifar/last.kiln data/cifar10 --out cifar.int8.kiln
//
// Every error ends the program with one line on stderr and exit status 1; a training run stopped by Ctrl-C
// (train/interrupt.hpp) with one line saying what it saved, and exit status 130.
#include <unistd.h>

#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "cli/openmp_waiting.hpp"
#include "train/interrupt.hpp"

int main(int argc, char** argv) {
  kiln::cli::settle_openmp_waiting(argv);
  CLI::App app{"kiln: train, evaluate and predict with small CNNs on image folders"};
  app.require_subcommand(1);
  kiln::cli::add_train_command(app);
  kiln::cli::add_eval_command(app);
  kiln::cli::add_predict_command(app);
  kiln::cli::add_info_command(app);
  kiln::cli::add_summary_command(app);
  kiln::cli::add_data_report_command(app);
  kiln::cli::add_report_command(app);
  kiln::cli::add_explain_command(app);
  kiln::cli::add_pack_command(app);
  kiln::cli::add_export_command(app);
  kiln::cli::add_quantize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const kiln::train::Interrupted& stopped) {
    if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "kiln: %s\n", stopped.what());
    return 130;  // what a shell reports for a process ended by SIGINT
  } catch (const std::exception& error) {
    if (isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\033[K");  // over any half-drawn progress bar
    std::fprintf(stderr, "kiln: error: %s\n", error.what());
    return 1;
  }
  return 0;
}
