import CriaTestSupport
import Foundation
import XCTest

/// `cria bench --depths`: only the named training depths run, each with its step's parts,
/// and a depth that is not one gets a one-line error naming the option.
final class BenchDepthsTests: XCTestCase {
    func testDepthsRunsOnlyTheNamedDepthsWithTheirStepParts() throws {
        let result = try CLI.run(["bench", "--threads", "1", "--alpha", "0.35", "--size", "32", "--batch", "2", "--repetitions", "1",
                                  "--training-steps", "1", "--steady-batches", "0", "--depths", "120,all", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        let training = try XCTUnwrap(report["training"] as? [[String: Any]])
        XCTAssertEqual(training.compactMap { $0["key"] as? String }, ["finetune120", "all"])
        for row in training {
            let parts = try XCTUnwrap(row["step_ms"] as? [String: Double], "\(row)")
            XCTAssertEqual(Set(parts.keys), ["prefix", "forward", "backward", "update"])
            XCTAssertGreaterThan(parts["backward"]!, 0, "\(row): a trainable suffix has a backward pass")
        }
        XCTAssertNotNil(report["train_all_b2_update_ms"] as? Double)
        XCTAssertNil(report["train_frozen_b2_img_s"], "the frozen base was not asked for")
        XCTAssertNil(report["train_frozen_first_epoch_s"], "--depths skips the cached frozen epochs")
    }

    func testADepthThatIsNotOneIsRejectedInOneLine() throws {
        let result = try CLI.run(["bench", "--alpha", "0.35", "--size", "32", "--depths", "120,twelve"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--depths: 'twelve' is not frozen, all or a layer index"), result.stderr)
    }
}
