import CriaCore
import CriaKernels
import Foundation

/// The latency strategy, for fewer images than threads (batch 1): the threads
/// run each image together in one `SpinTeam` region, with a barrier after
/// every step (its outputs are the next step's inputs) and no thread wake-up
/// per layer. Large layers split by output rows (`+RowBands`), small ones
/// (input ≤ `channelSplitPixels`) by channels.
extension InferenceExecutor {
    func runSharedImages<Hook: ExecutionHook>(_ run: Run, threads: Int, hook: Hook) {
        let steps = program.spatialSteps
        let team = SpinTeam.shared
        team.run(size: threads) { thread in
            let own = self.context(0, scratch: thread, thread: thread, run)
            let shared = self.context(0, scratch: 0, thread: thread, run)
            for image in 0..<run.batch {
                for (index, step) in steps.enumerated() {
                    hook.step(index, thread: thread) {
                        if self.splitsChannels(step) {
                            self.runChannelSlice(step, image: image, member: thread, of: threads, shared, team: team, hook: hook)
                        } else if step.op.splitsRows && step.rows > 1 {
                            self.runSpatial(step, image: image, slot: 0,
                                            rows: step.rows * thread / threads ..< step.rows * (thread + 1) / threads, own, hook: hook)
                        } else if thread == 0 {
                            self.runSpatial(step, image: image, slot: 0, rows: 0..<step.rows, shared, hook: hook)
                        }
                        // An alias writes nothing: nobody needs to wait for it.
                        if case .alias = step.op { return }
                        team.barrier()
                    }
                }
            }
        }
    }

    /// Whether a step runs split by output channels when one image is shared by
    /// all threads: its input is small (`InferenceOptions.channelSplitPixels`).
    ///
    /// Splitting a 10×10 or 5×5 image by rows leaves each thread 2–5 rows,
    /// and each must expand the rows its 3×3 window overlaps as well: on the
    /// 5×5 blocks the busier thread computes 4 of 5 expanded rows. Split by
    /// channels, each thread expands and filters half the channels of every
    /// row, meets the other at a barrier, then projects half the output
    /// channels from all of them: no work is repeated, for one more barrier.
    func splitsChannels(_ step: SpatialStep) -> Bool {
        switch step.op {
        case .block(let block):
            return block.depthwise.shape.height * block.depthwise.shape.width <= program.channelSplitPixels
        case .pointwise(let conv):
            return conv.postActivation == nil && conv.shape.height * conv.shape.width <= program.channelSplitPixels
        default:
            return false
        }
    }

    /// Channels `[lower, upper)` of `count` for `member` of `members`: slices start on multiples of 8 (one SIMD vector).
    private static func channelSlice(_ count: Int, member: Int, of members: Int) -> Range<Int> {
        func boundary(_ m: Int) -> Int { m == members ? count : (count * m / members) & ~7 }
        return boundary(member) ..< boundary(member + 1)
    }

    /// `member`'s share of a channel-split step (see `splitsChannels`) on one
    /// image. Every member uses the shared scratch of `context`; a block meets
    /// at one barrier between the depthwise step and the projection.
    private func runChannelSlice<Hook: ExecutionHook>(_ step: SpatialStep, image: Int, member: Int, of members: Int,
                                                      _ context: Context, team: SpinTeam, hook: Hook) {
        let input = address(step.inputs[0], image: image, slot: 0, context)
        let output = address(step.node, image: image, slot: 0, context)
        switch step.op {
        case .pointwise(let conv):
            hook.kernel(.pointwise, thread: context.thread) {
                pointwise(conv, input: input, rows: conv.shape.outputHeight * conv.shape.outputWidth,
                          columns: Self.channelSlice(conv.shape.outputChannels, member: member, of: members), output: output)
            }
        case .block(let block):
            runWholeImageBlock(block, input: input, residual: block.residual.map { address($0, image: image, slot: 0, context) },
                               output: output, images: 1,
                               expanded: Self.channelSlice(block.depthwise.shape.inputChannels, member: member, of: members),
                               outputs: Self.channelSlice(block.project.shape.outputChannels, member: member, of: members),
                               between: { team.barrier() }, context, hook: hook)
        default:
            preconditionFailure("step \(step.node) does not split by channels")
        }
    }
}
