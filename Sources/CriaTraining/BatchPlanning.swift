/// A batch source that can work ahead: the trainer tells it, at the start of each epoch
/// (and of each evaluation), which batches it will ask for and in what order, as
/// tf.data's `prefetch` knows its pipeline's order. Requests may still skip batches
/// (those served from the frozen-prefix cache), so a planner must not assume every
/// planned batch is fetched.
public protocol BatchPlanning: AnyObject {
    func plan(_ batches: [[Int]], epoch: Int, augment: Bool, seed: UInt64)
}
