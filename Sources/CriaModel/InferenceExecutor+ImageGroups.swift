import CriaCore
import CriaKernels
import Foundation

/// The throughput strategy, for batches of at least one image per thread:
/// each thread takes a contiguous range of images fixed by (batch, threads),
/// `group` at a time. Each image runs alone through the early, large layers
/// (in row bands), then the group's images run through each late, small layer
/// together, so that one GEMM covers up to `groupImages` images.
extension InferenceExecutor {
    func runImagesPerThread<Hook: ExecutionHook>(_ run: Run, threads: Int, hook: Hook) {
        let steps = program.spatialSteps, groupStart = min(program.groupStart, steps.count)
        let batch = run.batch, group = run.group
        // Cria's own team, not `concurrentPerform`: a region costs one small allocation at
        // several threads (`SpinTeam.run`) and none at one, where Dispatch made two to three.
        // At one thread the images run here, without the team (which may be running the
        // caller: `InferenceExecutor.run` asks for one thread inside Cria's parallel loops).
        func runImages(thread: Int) {
            let context = context(thread, scratch: thread, thread: thread, run)
            let images = batch * thread / threads ..< batch * (thread + 1) / threads
            for first in stride(from: images.lowerBound, to: images.upperBound, by: group) {
                let count = min(group, images.upperBound - first)
                for slot in 0..<count {
                    for index in 0..<groupStart {
                        let step = steps[index]
                        hook.step(index, thread: thread) {
                            runSpatial(step, image: first + slot, slot: slot, rows: 0..<step.rows, context, hook: hook)
                        }
                    }
                }
                for index in groupStart..<steps.count {
                    let step = steps[index], perCall = imagesPerCall(step, group: count)
                    hook.step(index, thread: thread) {
                        for slot in stride(from: 0, to: count, by: perCall) {
                            runGroup(step, first: first + slot, slot: slot, count: min(perCall, count - slot), context, hook: hook)
                        }
                    }
                }
            }
        }
        if threads == 1 {
            runImages(thread: 0)
        } else {
            SpinTeam.shared.run(size: threads) { thread in runImages(thread: thread) }
        }
    }

    /// Images per group in the group phase: what each thread holds, up to the option.
    /// Depends only on (batch, threads), as the partition must.
    func groupSize(batch: Int, threads: Int) -> Int {
        guard batch >= threads else { return 1 }
        return max(1, min(program.groupImages, (batch + threads - 1) / threads))
    }

    /// Images of a group that one call of `step` takes (`InferenceOptions.groupRows`).
    private func imagesPerCall(_ step: SpatialStep, group: Int) -> Int {
        max(1, min(group, program.groupRows / max(1, step.inputPixels)))
    }

    /// One step of the group phase on images `first ..< first + count`, in slots `slot ..< slot + count`.
    private func runGroup<Hook: ExecutionHook>(_ step: SpatialStep, first: Int, slot: Int, count: Int, _ context: Context,
                                               hook: Hook) {
        if case .block(let block) = step.op {
            runWholeImageBlock(block, input: address(step.inputs[0], image: first, slot: slot, context),
                               residual: block.residual.map { address($0, image: first, slot: slot, context) },
                               output: address(step.node, image: first, slot: slot, context), images: count, context, hook: hook)
        } else if step.op.stacksImages {
            // The group's images lie one after the other in every buffer: one call over all their rows.
            runSpatial(step, image: first, slot: slot, rows: 0 ..< count * step.rows, context, hook: hook)
        } else {
            for offset in 0..<count {
                runSpatial(step, image: first + offset, slot: slot + offset, rows: 0..<step.rows, context, hook: hook)
            }
        }
    }

    /// One inverted-residual block on `images` whole images stored one after
    /// the other: one expand GEMM and one project GEMM for all of them, the
    /// depthwise step image by image in between. A channel-split thread
    /// passes its slices of the expanded channels (`expanded`) and of the
    /// output channels (`outputs`), and a barrier as `between`: the
    /// projection reads every thread's filtered channels.
    func runWholeImageBlock<Hook: ExecutionHook>(_ block: BlockOp, input: UnsafeMutablePointer<Float>,
                                                 residual: UnsafeMutablePointer<Float>?, output: UnsafeMutablePointer<Float>,
                                                 images: Int, expanded: Range<Int>? = nil, outputs: Range<Int>? = nil,
                                                 between: () -> Void = {}, _ context: Context, hook: Hook) {
        let dw = block.depthwise, project = block.project
        let inputScalars = dw.shape.height * dw.shape.width * dw.shape.inputChannels
        let outputPixels = dw.shape.outputHeight * dw.shape.outputWidth
        var band = UnsafePointer(input)
        var filtered = context.scratch
        if let expand = block.expand {
            hook.kernel(.pointwise, thread: context.thread) {
                pointwise(expand, input: input, rows: images * dw.shape.height * dw.shape.width, columns: expanded,
                          output: context.scratch)
            }
            band = UnsafePointer(context.scratch)
            filtered += ArenaPlan.aligned(images * inputScalars)
        }
        hook.kernel(.depthwise, thread: context.thread) {
            for image in 0..<images {
                depthwise(dw, band: band + image * inputScalars, bandStart: 0, bandRows: dw.shape.height,
                          rows: 0..<dw.shape.outputHeight, channels: expanded, inputClamp: block.depthwiseInputClamp,
                          output: filtered + image * outputPixels * dw.shape.inputChannels)
            }
        }
        between()
        hook.kernel(.pointwise, thread: context.thread) {
            pointwise(project, input: filtered, rows: images * outputPixels, columns: outputs, residual: residual,
                      output: output)
        }
    }
}
