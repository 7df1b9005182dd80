import CriaCore
import Foundation

/// Keras's `fit(verbose=1)` output: `Epoch 3/10`, then a progress bar that
/// ends in the epoch's metrics. When stderr is not a terminal (CI, logs,
/// sweeps) it prints one plain line per epoch instead.
public final class ConsoleReporter: TrainingObserver {
    private let interactive: Bool
    private let write: (String) -> Void
    private var bar: ProgressBar?
    private var started = Date()
    private var batches = 0
    private var totalEpochs = 0
    private var latest = ""

    public init(interactive: Bool? = nil, write: ((String) -> Void)? = nil) {
        self.interactive = interactive ?? (isatty(STDERR_FILENO) != 0)
        self.write = write ?? { FileHandle.standardError.write(Data($0.utf8)) }
    }

    public func epochStarted(epoch: Int, of totalEpochs: Int, batches: Int) {
        self.totalEpochs = totalEpochs
        self.batches = batches
        started = Date()
        guard interactive else { return }
        write("Epoch \(epoch + 1)/\(totalEpochs)\n")
        bar = ProgressBar(total: batches, interactive: true, output: { [weak self] text in
            self?.write(text + (self?.latest ?? ""))
        })
    }

    public func batchFinished(batch: Int, loss: Double, accuracy: Double) {
        latest = String(format: " - loss: %.4f - accuracy: %.4f", loss, accuracy)
        bar?.advance()
    }

    public func epochFinished(_ record: EpochRecord) {
        latest = ConsoleReporter.metrics(record, perStep: Date().timeIntervalSince(started) / Double(max(batches, 1)))
        if interactive {
            bar?.finish()
        } else {
            write("Epoch \(record.epoch + 1)/\(totalEpochs) [\(record.phase)]\(latest)\n")
        }
        bar = nil
    }

    /// ` - 3s 412ms/step - loss: 0.6931 - accuracy: 0.5000 - val_loss: ... - lr: 1e-04`
    static func metrics(_ record: EpochRecord, perStep: Double) -> String {
        var text = String(format: " - %.0fms/step - loss: %.4f - accuracy: %.4f", perStep * 1000, record.loss, record.accuracy)
        if let valLoss = record.valLoss, let valAccuracy = record.valAccuracy {
            text += String(format: " - val_loss: %.4f - val_accuracy: %.4f", valLoss, valAccuracy)
        }
        if record.kerasAccuracy != record.accuracy {
            text += String(format: " - keras_accuracy: %.4f", record.kerasAccuracy)
        }
        return text + String(format: " - lr: %.0e", record.learningRate)
    }
}
