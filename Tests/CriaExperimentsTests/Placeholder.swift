// Placeholder so the package resolves; real tests replace it.
