// The reference's loss on hand-made logits: HF's shift (logits[t] predicts labels[t + 1]; labels[0] is never
// scored), ignore_index -100, mean over the scored labels; and the refusal when nothing is scored (the reference
// would return NaN).
#include <cmath>

#include "pipeline/gill_score.h"
#include "test_support.h"

using namespace gill;
using gill::test::expect_error;

TEST(GillScoreLoss, ShiftIgnoreAndMean) {
  // Row 0: softmax [1/4, 3/4]; row 1: softmax [1/2, 1/2]; row 2 predicts nothing (the last row).
  auto logits = torch::tensor({0.0, std::log(3.0), 5.0, 5.0, 9.0, -9.0}, torch::kFloat32).reshape({3, 2});
  // labels[0] = 0 is never scored; labels[1] = 1 is scored against row 0; labels[2] = 0 against row 1.
  auto s = pipeline::shifted_log_likelihood(logits, {0, 1, 0});
  EXPECT_EQ(s.n_scored, 2);
  EXPECT_EQ(s.n_positions, 3);
  EXPECT_NEAR(s.log_likelihood, (std::log(0.75) + std::log(0.5)) / 2, 1e-6);
  // An ignored label drops out of the mean.
  auto t = pipeline::shifted_log_likelihood(logits, {-100, 1, -100});
  EXPECT_EQ(t.n_scored, 1);
  EXPECT_NEAR(t.log_likelihood, std::log(0.75), 1e-6);
}

TEST(GillScoreLoss, NothingScored) {
  auto logits = torch::zeros({2, 3});
  expect_error(
      [&] {
        pipeline::shifted_log_likelihood(logits, {5, -100});
      },
      ErrorCode::kInvalidArgument,
      "scoring: the sequence of 2 positions has no text token after its first position, so nothing is scored");
  expect_error(
      [&] {
        pipeline::shifted_log_likelihood(logits, {1, 2, 0});
      },
      ErrorCode::kShapeMismatch, "scoring: logits [2, 3] for 3 labels");
}
